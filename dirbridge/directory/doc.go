package directory
