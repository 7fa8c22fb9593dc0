"""The command line (`boothgate serve|send|rehearse|…`) and the booth simulator. May import anything."""
