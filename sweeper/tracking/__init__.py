"""MLflow: the engine's recorder, written by one writer process, to any store through MLflow's
public client or to the default SQLite store directly. The only part of sweeper that knows
MLflow's names, tags and statuses."""
