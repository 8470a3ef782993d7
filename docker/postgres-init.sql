-- Run once, when the postgres volume is first initialised: one database per store.
CREATE DATABASE mlflow;
CREATE DATABASE optuna;
