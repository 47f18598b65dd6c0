"""WHERE trials run: the messages, the trial handle an objective gets, the worker loop and the
backends that keep workers alive. Imports nothing of the engine, tracking or report, and never
optuna or mlflow: a worker stays cheap to start and cannot write the study."""
