"""The ``kubernetes`` driver: a tenancy is a namespace on the region's GPU cluster.

``manifests`` and ``workspace`` build the objects (pure data, no client import), ``config``
reads the cluster settings, ``kubeconfig`` writes the tenant's file, ``cluster`` wraps the
official client and ``driver`` holds the lifecycle. See docs/drivers/kubernetes.md.
"""
