"""`netweave lab`: whole topologies (underlay, hosts running `netweave vtep` + `netweave agent`, VMs, a
controller) in network namespaces, built from a YAML file through the Neutron API, then proven with a
connectivity matrix. See docs/lab.md.
"""
