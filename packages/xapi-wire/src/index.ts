// placeholder: xapi-wire's public surface is exported here as it is built.
export {}
