"""Product data: the tables and their schemas, the product catalogue, the reference dataset."""
