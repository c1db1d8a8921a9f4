"""Layer 7, evaluation: the one success rule (:mod:`.rule`), the one grid runner (:mod:`.grid`), the comparison
grid's summary (:mod:`.comparison`), the held-out robustness grid (:mod:`.robustness`), what a defense costs as the
model grows (:mod:`.scaling`), what channels-last memory buys (:mod:`.channels_last`) and published numbers from
other setups (:mod:`.reference`). Imports the layers below it; it returns tables and writes no result files (the
command line does)."""
