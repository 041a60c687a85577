"""(in progress)"""
COMMANDS = []
