"""Hardware profiles: the HardwareProfile schema, its YAML loader and the shipped profile library."""

from hwprofiles.loader import ProfileError, check_file, list_profiles, load_profile
from hwprofiles.schema import DTYPES, HardwareProfile, Source

__all__ = ["DTYPES", "HardwareProfile", "ProfileError", "Source", "check_file", "list_profiles",
           "load_profile"]
