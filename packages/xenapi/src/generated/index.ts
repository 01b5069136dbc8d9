/* eslint-disable */
// GENERATED FILE (bootstrap stub)
export {}
