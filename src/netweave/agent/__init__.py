"""The per-host agent: registers its chassis, watches its view, reconciles the datapath, reports status."""
