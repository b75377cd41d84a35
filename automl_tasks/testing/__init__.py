"""Test helpers shipped with loopml for contributors (algorithms, deployment engines)."""
