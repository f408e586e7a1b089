"""Data shipped with massdyn (tables, configs); read with importlib.resources."""
