"""Shipped hardware profiles (*.toml), packaged as qwenctl.bundled_profiles; loaded by qwenctl.profiles."""
