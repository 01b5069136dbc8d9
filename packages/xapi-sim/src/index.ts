// placeholder: xapi-sim's public surface is exported here as it is built.
export {}
