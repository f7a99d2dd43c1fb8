"""Control-plane logic, pure where it can be: the compiler from the logical model to per-chassis views."""
