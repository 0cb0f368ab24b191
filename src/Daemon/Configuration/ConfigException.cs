namespace Backupd.Daemon.Configuration;

/// <summary>The configuration file is missing or invalid. The message names the file, line and key.</summary>
public sealed class ConfigException : Exception
{
    public ConfigException(string message) : base(message) { }
    public ConfigException(string message, Exception inner) : base(message, inner) { }
    public ConfigException() { }
}
