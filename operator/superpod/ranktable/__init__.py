"""ranktable"""
