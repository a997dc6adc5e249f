"""The training system and what runs around it: the LightningModule (`system`), its metrics and schedules,
building objects from configs (`builders`), checkpoints and their trust rules (`checkpoints`), the run record
(`run_record`), run folders (`runs`), clusters (`cluster`) and choosing a checkpoint (`selection`)."""
