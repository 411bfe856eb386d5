-- check: health
-- description: The restored database accepts connections and answers a query.
-- expect: [[1]]
SELECT 1;
