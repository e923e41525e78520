"""kemm.engine"""
