"""The standalone VTEP daemon (`netweave vtep`): config file, control socket, signal handling."""
