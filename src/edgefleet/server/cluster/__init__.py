"""Scale-out: process roles, the loop registry, leader election, and the state processes share
(live stream and cache invalidation over Redis). docs/scaling.md."""
