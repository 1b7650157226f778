"""The commands: cli (dispatch), batch (convert), live, gui, models, doctor."""
