"""The command-line verbs (`clarena <command>`): thin modules over the run, the run folder and the
reports, each exposing `main(argv) -> int` (`clarena.cli` maps names to them)."""
