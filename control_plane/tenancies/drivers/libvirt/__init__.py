"""The ``libvirt`` driver for VM tenancies (see :mod:`.driver`).

Split so that what decides a VM's shape stays pure and unit-tested: :mod:`.config`
(settings), :mod:`.plan` (placement -> VM spec and refusals), :mod:`.domain` (spec ->
domain XML), :mod:`.seed` (cloud-init), :mod:`.console` (console tokens); only
:mod:`.host` and :mod:`.driver` import libvirt-python.
"""
