"""A simulated charger for trying the CSMS out: ``manage.py simulate_charger``.

Built on the ``ocpp`` package's ChargePoint, the same one the tests use. ``base.py`` holds what
both versions share (the session loop, printing every frame); ``v16.py`` and ``v201.py`` speak
the version: the messages a charger sends and its answers to the CSMS's commands.
"""
