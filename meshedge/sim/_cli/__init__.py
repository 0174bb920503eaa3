"""The command line of the simulator, ``python -m meshedge.sim`` (see :mod:`meshedge.sim.__main__`).

:mod:`.arguments` defines its options, :mod:`.report` what it prints for each scenario.
"""
