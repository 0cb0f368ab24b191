using Backupd.Daemon.Cli;

return await CommandTree.RunAsync(args);
