"""MLflow registry: register models with lineage and a review dossier, move aliases through gates."""
