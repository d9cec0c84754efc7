//! Behaviour tests for the policy module, written against its public API.

mod ceiling;
mod channels;
mod command;
mod duration;
mod example;
mod load;
mod pattern;
mod pattern_props;
