"""The scenario suite every board implementation runs (scenarios.py) and its drivers."""
