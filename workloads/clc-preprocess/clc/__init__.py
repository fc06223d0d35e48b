"""The clc package of the Luigi seed: preprocessing that runs one file at a time."""
