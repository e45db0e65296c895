"""Checkers: what one range needs (a replica, a better placement), as REPAIR-priority operators."""
