"""Scoring library for the retail sales forecast: data, features, R gbm models, validation.

Runs inside the worker image, so it must never import Airflow.
"""
