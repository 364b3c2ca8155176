//! Behaviour tests over the fakes: registers, delivery, SGIs, LPIs, the real its-server
//! wired in (and an exhaustive exploration of the two servers together), and a randomized
//! comparison against a reference model of the architecture's state machine.

mod commands;
mod delivery;
mod explore;
mod its;
mod lpi;
mod model;
mod races;
mod registers;
mod sgi;
mod spec;
