"""What DECIDES: the coordinator loop, the only writer of the Optuna study; the recorder
protocol through which it reports trials; and the study on disk (journal, lock, resume).
Knows no MLflow: tracking is one recorder among others."""
