// placeholder: xenapi's public surface is exported here as it is built.
export {}
