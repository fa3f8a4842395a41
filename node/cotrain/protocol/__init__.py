"""Wire-level protocol pieces shared by cotrain nodes and the on-chain contracts."""
