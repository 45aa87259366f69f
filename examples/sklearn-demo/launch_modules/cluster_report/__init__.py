"""Cluster the wine data set and print a table of cluster sizes."""
