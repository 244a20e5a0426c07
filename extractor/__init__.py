"""Synthèse extraction stages: document -> pages -> text with offsets -> mentions -> entries -> synthesis."""

__version__ = "0.2.2"
