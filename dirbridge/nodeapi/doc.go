package nodeapi
