-- Version 3: the epoch of the account lease each order was sent under, so that an order sent
-- by a replica that had lost its account can be found. Orders of version 2 had no lease.
ALTER TABLE orders ADD COLUMN lease_epoch BIGINT;
