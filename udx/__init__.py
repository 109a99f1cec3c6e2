"""Code that ships alone into the warehouse: numpy/scipy/numba kernels and the Vertica UDx."""
