"""The code a scoring task runs: reading its tables, scoring R models through rpy2 (the retail
forecast's packages and any scenario's), checking and writing what they predict.

Runs inside the worker image, so it must never import Airflow.
"""
