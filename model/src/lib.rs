//! cm-model: the cookbook format and everything the server, cmctl and the agent
//! must agree on.
