"""Test models for cgviz (a package only so that its conftest.py is not imported as plain `conftest`).

Without this file pytest would import tests/models/conftest.py under the bare name `conftest`,
replacing tests/conftest.py in sys.modules and breaking `from conftest import ROOT` elsewhere.
The modules here still import the zoo as the top-level `zoo` (see zoo.py).
"""
