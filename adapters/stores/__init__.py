"""Backup stores (``S3Store`` on boto3, ``FileStore``) and the streams between a process and a store.

May import adapters' interfaces, models and errors, boto3; never bot or commands.
"""
