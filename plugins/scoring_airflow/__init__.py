"""Airflow glue for the weekly sales forecast: settings, planning, compute backends, operator, trigger."""
