"""After the sweep: plots, the trials table, the best model and the dataset's lineage on the
MLflow parent run."""
