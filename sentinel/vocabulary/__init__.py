"""The shared vocabulary below the stages: samples, findings, incidents, notices, ports.

Plain data and protocols; a stage talks to another only through these.
"""
