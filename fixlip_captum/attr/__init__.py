"""Captum-style attribution classes."""

from fixlip_captum.attr.fixlip import FIxLIP

__all__ = ["FIxLIP"]
