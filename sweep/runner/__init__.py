"""Running a plan on Ray Tune: the driver (driver), the Ray session (session) and the
reaping of a killed driver's Ray (reap), the Tune trainable (trainable), the results
recorder that merges finished members and writes TensorBoard while Tune runs
(recorder), progress lines and the stopper (progress), user callbacks (callbacks), and
the reading of a finished experiment into rows (collect). Ray is imported only here,
and only when a sweep runs."""
